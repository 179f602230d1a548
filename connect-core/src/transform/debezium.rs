//! Debezium's routing transforms: the outbox `EventRouter` and `ByLogicalTableRouter`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::fields::new_struct;
use super::router::RegexRouter;
use super::{transform_error, SchemaCache, Transform};
use crate::envelope::{ChangeEvent, Op, ENVELOPE_SUFFIX};
use crate::error::Error;
use crate::properties::Scope;
use crate::record::{Header, Record};
use crate::schema::{Schema, SchemaType};
use crate::value::{Struct, Value};

/// Where `table.fields.additional.placement` puts an outbox column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placement {
    Header,
    Envelope,
    Partition,
}

#[derive(Debug, Clone)]
struct Additional {
    column: String,
    placement: Placement,
    alias: Arc<str>,
}

/// Envelope-placement value schemas by (routed-by value, version).
type ValueSchemas = HashMap<(String, Option<i32>), Arc<Schema>>;

/// What an update of the outbox table does (`table.op.invalid.behavior`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InvalidOp {
    Warn,
    Error,
    Fatal,
}

/// Debezium's outbox `io.debezium.transforms.outbox.EventRouter`: each row inserted into
/// an outbox table becomes one event on `outbox.event.<aggregatetype>`, keyed by
/// `aggregateid`, valued by `payload`, with the row's `id` in the `id` header. Keys (with
/// Debezium's defaults): `table.field.event.id` (`id`), `table.field.event.key`
/// (`aggregateid`), `table.field.event.payload` (`payload`),
/// `table.field.event.timestamp` (the record time; else the envelope's `ts_ms`),
/// `table.field.event.schema.version`, `table.fields.additional.placement`
/// (`column:header|envelope|partition[:alias]`), `route.by.field` (`aggregatetype`),
/// `route.topic.regex` / `route.topic.replacement` (`(?<routedByValue>.*)` /
/// `outbox.event.${routedByValue}`), `route.tombstone.on.empty.payload` (false),
/// `table.op.invalid.behavior` (`warn`, `error` or `fatal` on updates),
/// `table.expand.json.payload` (a JSON text payload becomes a struct with an inferred
/// schema, when the value is the payload alone; with columns placed in the envelope the
/// payload keeps its column's type, as Debezium's envelope schema does). Deletes and
/// tombstones are dropped; records that are not change events pass.
#[derive(Debug)]
pub struct EventRouter {
    id: String,
    key: String,
    payload: String,
    timestamp: Option<String>,
    schema_version: Option<String>,
    additional: Vec<Additional>,
    route_by: String,
    router: RegexRouter,
    tombstone_on_empty: bool,
    expand_json: bool,
    invalid_op: InvalidOp,
    schemas: Mutex<ValueSchemas>,
}

impl EventRouter {
    /// Builds from `transforms.<alias>.*`.
    pub fn from_props(scope: &Scope<'_>) -> Result<Self, Error> {
        let field = |name: &str, default: &str| scope.get(name).unwrap_or(default).to_owned();
        let mut additional = Vec::new();
        for spec in scope.list("table.fields.additional.placement") {
            let parts: Vec<&str> = spec.split(':').map(str::trim).collect();
            let placement = match parts.get(1).copied() {
                Some("header") => Placement::Header,
                Some("envelope") => Placement::Envelope,
                Some("partition") => Placement::Partition,
                _ => {
                    return Err(Error::config(
                        scope.key("table.fields.additional.placement"),
                        format!(
                            "invalid `{spec}`: expected column:header|envelope|partition[:alias]"
                        ),
                    ))
                }
            };
            additional.push(Additional {
                column: parts[0].to_owned(),
                placement,
                alias: Arc::from(parts.get(2).copied().unwrap_or(parts[0])),
            });
        }
        let invalid_op = match scope.one_of(
            "table.op.invalid.behavior",
            &["warn", "error", "fatal"],
            "warn",
        )? {
            "warn" => InvalidOp::Warn,
            "error" => InvalidOp::Error,
            _ => InvalidOp::Fatal,
        };
        Ok(EventRouter {
            id: field("table.field.event.id", "id"),
            key: field("table.field.event.key", "aggregateid"),
            payload: field("table.field.event.payload", "payload"),
            timestamp: scope.get("table.field.event.timestamp").map(str::to_owned),
            schema_version: scope
                .get("table.field.event.schema.version")
                .map(str::to_owned),
            additional,
            route_by: field("route.by.field", "aggregatetype"),
            router: RegexRouter::with_key(
                &scope.key("route.topic.regex"),
                scope
                    .get("route.topic.regex")
                    .unwrap_or("(?<routedByValue>.*)"),
                scope
                    .get("route.topic.replacement")
                    .unwrap_or("outbox.event.${routedByValue}"),
            )?,
            tombstone_on_empty: scope.bool_or("route.tombstone.on.empty.payload", false)?,
            expand_json: scope.bool_or("table.expand.json.payload", false)?,
            invalid_op,
            schemas: Mutex::default(),
        })
    }

    fn column<'r>(
        &self,
        record: &Record,
        row: &'r Struct,
        name: &str,
        setting: &str,
    ) -> Result<(&'r Arc<Schema>, &'r Value), Error> {
        let (i, f) = row.schema().field(name).ok_or_else(|| {
            transform_error(
                record,
                format!("the outbox row has no column `{name}` (set by {setting})"),
            )
        })?;
        Ok((f.schema(), &row.values()[i]))
    }

    /// The record time: the event timestamp column (Timestamp, MicroTimestamp or
    /// NanoTimestamp) if set and not null, else the envelope's `ts_ms`.
    fn timestamp(
        &self,
        record: &Record,
        row: &Struct,
        envelope: &Struct,
    ) -> Result<Option<i64>, Error> {
        let ts_ms = envelope.get("ts_ms").and_then(Value::as_i64);
        let Some(column) = &self.timestamp else {
            return Ok(ts_ms);
        };
        let (schema, value) = self.column(record, row, column, "table.field.event.timestamp")?;
        let Some(v) = value.as_i64() else {
            return Ok(ts_ms);
        };
        match schema.name() {
            Some(crate::schema::logical::TIMESTAMP | "io.debezium.time.Timestamp") => Ok(Some(v)),
            Some("io.debezium.time.MicroTimestamp") => Ok(Some(v / 1_000)),
            Some("io.debezium.time.NanoTimestamp") => Ok(Some(v / 1_000_000)),
            other => Err(transform_error(
                record,
                format!(
                    "table.field.event.timestamp column `{column}` is {}, not a timestamp",
                    other.unwrap_or(schema.schema_type().json_name())
                ),
            )),
        }
    }

    /// The value schema when columns go into the envelope: Debezium names it after the
    /// row schema with the routed-by value inserted before its last part.
    fn envelope_schema(&self, row: &Struct, routed_by: &str, version: Option<i32>) -> Arc<Schema> {
        let mut cache = self.schemas.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .entry((routed_by.to_owned(), version))
            .or_insert_with(|| {
                let name = match row.schema().name() {
                    Some(n) => match n.rfind('.') {
                        Some(dot) => format!("{}{routed_by}.{}", &n[..=dot], &n[dot + 1..]),
                        None => format!("{routed_by}.{n}"),
                    },
                    None => routed_by.to_owned(),
                };
                let field = |name: &str| {
                    row.schema()
                        .field(name)
                        .map(|(_, f)| f.schema().clone())
                        .expect("checked by the caller")
                };
                let mut b = Schema::struct_builder()
                    .name(name)
                    .field("payload", field(&self.payload));
                for a in self
                    .additional
                    .iter()
                    .filter(|a| a.placement == Placement::Envelope)
                {
                    b = b.field(a.alias.clone(), field(&a.column));
                }
                if let Some(v) = version {
                    b = b.version(v);
                }
                b.build()
            })
            .clone()
    }
}

impl Transform for EventRouter {
    fn apply(&self, mut record: Record) -> Result<Option<Record>, Error> {
        if record.is_tombstone() {
            return Ok(None);
        }
        let Some(event) = ChangeEvent::from_record(&record) else {
            return Ok(Some(record));
        };
        match event.op() {
            Some(Op::Delete) => return Ok(None),
            Some(Op::Update) => {
                return match self.invalid_op {
                    InvalidOp::Warn => {
                        tracing::warn!(topic = %record.topic, "update of an outbox row ignored");
                        Ok(None)
                    }
                    InvalidOp::Error => {
                        tracing::error!(topic = %record.topic, "update of an outbox row ignored");
                        Ok(None)
                    }
                    InvalidOp::Fatal => Err(transform_error(
                        &record,
                        "an outbox row was updated (table.op.invalid.behavior=fatal)",
                    )),
                }
            }
            _ => {}
        }
        let envelope = record.value.as_struct().expect("change events are structs");
        let row = event
            .after()
            .ok_or_else(|| transform_error(&record, "the outbox event has no `after` row"))?;
        let (payload_schema, payload) =
            self.column(&record, row, &self.payload, "table.field.event.payload")?;
        let (id_schema, id) = self.column(&record, row, &self.id, "table.field.event.id")?;
        let routed_by = match self
            .column(&record, row, &self.route_by, "route.by.field")?
            .1
        {
            Value::String(s) => s.to_string(),
            _ => {
                return Err(transform_error(
                    &record,
                    format!(
                        "route.by.field column `{}` is not a non-null string",
                        self.route_by
                    ),
                ))
            }
        };
        let timestamp = self.timestamp(&record, row, envelope)?;
        let (key_schema, key) = match row.schema().field(&self.key) {
            Some((i, f)) => (Some(f.schema().clone()), row.values()[i].clone()),
            None => (Some(Schema::required(SchemaType::String)), Value::Null),
        };
        let mut headers = vec![Header {
            key: Arc::from("id"),
            schema: Some(id_schema.clone()),
            value: id.clone(),
        }];
        let mut partition = None;
        let mut extra = Vec::new();
        for a in &self.additional {
            let (schema, value) =
                self.column(&record, row, &a.column, "table.fields.additional.placement")?;
            match a.placement {
                Placement::Header => headers.push(Header {
                    key: a.alias.clone(),
                    schema: Some(schema.clone()),
                    value: value.clone(),
                }),
                Placement::Envelope => extra.push(value.clone()),
                Placement::Partition => {
                    partition = Some(
                        value
                            .as_i64()
                            .and_then(|p| i32::try_from(p).ok())
                            .ok_or_else(|| {
                                transform_error(
                                    &record,
                                    format!("partition column `{}` is not an int32", a.column),
                                )
                            })?,
                    )
                }
            }
        }
        let empty = match payload {
            Value::Null => true,
            Value::String(s) => s.trim().is_empty(),
            _ => false,
        };
        let (value_schema, value) = if empty && self.tombstone_on_empty {
            (None, Value::Null)
        } else if self
            .additional
            .iter()
            .all(|a| a.placement != Placement::Envelope)
        {
            match (self.expand_json, payload) {
                (true, Value::String(text)) => match super::expand::expand(text) {
                    Ok((schema, value)) => (Some(schema), value),
                    Err(why) => {
                        tracing::warn!(topic = %record.topic, %why, "outbox payload not expanded");
                        (Some(payload_schema.clone()), payload.clone())
                    }
                },
                _ => (Some(payload_schema.clone()), payload.clone()),
            }
        } else {
            let version = match &self.schema_version {
                Some(column) => self
                    .column(&record, row, column, "table.field.event.schema.version")?
                    .1
                    .as_i64()
                    .and_then(|v| i32::try_from(v).ok()),
                None => None,
            };
            let schema = self.envelope_schema(row, &routed_by, version);
            let mut values = Vec::with_capacity(1 + extra.len());
            values.push(payload.clone());
            values.extend(extra);
            (Some(schema.clone()), new_struct(schema, values))
        };
        record.topic = self.router.route(&Arc::from(routed_by));
        record.partition = partition;
        record.key_schema = key_schema;
        record.key = key;
        record.value_schema = value_schema;
        record.value = value;
        record.timestamp_ms = timestamp;
        record.headers.extend(headers);
        Ok(Some(record))
    }
}

/// Debezium's `io.debezium.transforms.ByLogicalTableRouter`: routes the records of
/// several physical tables (shards) to one logical topic. `topic.regex` must match the
/// whole topic, `topic.replacement` names the new one (`$1` groups); the key gains the
/// field `key.field.name` (default `__dbz__physicalTableIdentifier`) holding the old
/// topic, or its rewrite by `key.field.regex` / `key.field.replacement`, unless
/// `key.enforce.uniqueness=false`; the envelope and row schemas are renamed after the new
/// topic (`<topic>.Envelope`, `<topic>.Value`, `<topic>.Key`).
#[derive(Debug)]
pub struct ByLogicalTableRouter {
    topic: RegexRouter,
    key_field: Arc<str>,
    key_rewrite: Option<RegexRouter>,
    unique_keys: bool,
    key_schemas: SchemaCache,
    envelope_schemas: SchemaCache,
}

impl ByLogicalTableRouter {
    /// Builds from `transforms.<alias>.*`.
    pub fn from_props(scope: &Scope<'_>) -> Result<Self, Error> {
        let regex = scope.require("topic.regex")?;
        let replacement = scope.require("topic.replacement")?;
        let key_rewrite = match scope.get("key.field.regex") {
            Some(r) => Some(RegexRouter::with_key(
                &scope.key("key.field.regex"),
                r,
                scope.get("key.field.replacement").unwrap_or(""),
            )?),
            None => None,
        };
        Ok(ByLogicalTableRouter {
            topic: RegexRouter::with_key(&scope.key("topic.regex"), regex, replacement)?,
            key_field: Arc::from(
                scope
                    .get("key.field.name")
                    .unwrap_or("__dbz__physicalTableIdentifier"),
            ),
            key_rewrite,
            unique_keys: scope.bool_or("key.enforce.uniqueness", true)?,
            key_schemas: SchemaCache::default(),
            envelope_schemas: SchemaCache::default(),
        })
    }

    /// `source` with another name (and, unless `fields`, without its fields).
    fn renamed(source: &Schema, name: &str, fields: bool) -> crate::schema::SchemaBuilder {
        let mut b = source
            .basics()
            .with_optional(source.is_optional())
            .name(name);
        if fields {
            for f in source.fields() {
                b = b.field(f.name(), f.schema().clone());
            }
        }
        b
    }
}

impl Transform for ByLogicalTableRouter {
    fn apply(&self, mut record: Record) -> Result<Option<Record>, Error> {
        if !self.topic.matches(&record.topic) {
            return Ok(Some(record));
        }
        let old_topic = record.topic.clone();
        let new_topic = self.topic.route(&old_topic);
        if new_topic.is_empty() {
            return Ok(Some(record));
        }
        if let Value::Struct(key) = std::mem::take(&mut record.key) {
            let schema = self.key_schemas.get_or_build(key.schema(), |s| {
                let mut b = Self::renamed(s, &format!("{new_topic}.Key"), true);
                if self.unique_keys {
                    b = b.field(self.key_field.clone(), Schema::required(SchemaType::String));
                }
                b.build()
            });
            let mut values = key.into_values();
            if self.unique_keys {
                let id = match &self.key_rewrite {
                    Some(r) => r.route(&old_topic),
                    None => old_topic.clone(),
                };
                values.push(Value::string(&id));
            }
            record.key = new_struct(schema.clone(), values);
            record.key_schema = Some(schema);
        } else if !record.key.is_null() {
            return Err(transform_error(&record, "the key is not a struct"));
        }
        if ChangeEvent::from_record(&record).is_some() {
            let Value::Struct(envelope) = std::mem::take(&mut record.value) else {
                unreachable!("change events are structs")
            };
            let schema = self.envelope_schemas.get_or_build(envelope.schema(), |s| {
                let row = s
                    .field("before")
                    .or_else(|| s.field("after"))
                    .map(|(_, f)| {
                        Self::renamed(f.schema(), &format!("{new_topic}.Value"), true).build()
                    });
                let mut b = Self::renamed(s, &format!("{new_topic}{ENVELOPE_SUFFIX}"), false);
                for f in s.fields() {
                    let fs = match (f.name(), &row) {
                        ("before" | "after", Some(row)) => row.clone(),
                        _ => f.schema().clone(),
                    };
                    b = b.field(f.name(), fs);
                }
                b.build()
            });
            let values = schema
                .fields()
                .iter()
                .zip(envelope.into_values())
                .map(|(f, v)| match v {
                    Value::Struct(row) if matches!(f.name(), "before" | "after") => {
                        new_struct(f.schema().clone(), row.into_values())
                    }
                    v => v,
                })
                .collect();
            record.value = new_struct(schema.clone(), values);
            record.value_schema = Some(schema);
        }
        record.topic = new_topic;
        Ok(Some(record))
    }
}
