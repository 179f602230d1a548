//! Debezium's `ExtractNewRecordState` ("unwrap"): replaces the envelope by the row.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::{transform_error, Transform};
use crate::envelope::{ChangeEvent, Op};
use crate::error::Error;
use crate::properties::Scope;
use crate::record::Record;
use crate::schema::{Schema, SchemaType};
use crate::value::{Struct, Value};

/// What unwrap does with delete events and tombstones (`delete.tombstone.handling.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeleteTombstoneHandling {
    /// Deletes and tombstones are dropped.
    Drop,
    /// Deletes become tombstones; tombstones pass (Debezium's default).
    #[default]
    Tombstone,
    /// Deletes become the `before` row with `__deleted=true`; tombstones are dropped;
    /// other rows get `__deleted=false`.
    Rewrite,
    /// As `Rewrite`, but tombstones pass.
    RewriteWithTombstone,
    /// Deletes become tombstones; the connector's own tombstones are dropped.
    DeleteToTombstone,
}

impl DeleteTombstoneHandling {
    const NAMES: [&'static str; 5] = [
        "drop",
        "tombstone",
        "rewrite",
        "rewrite-with-tombstone",
        "delete-to-tombstone",
    ];

    fn from_name(name: &str) -> Self {
        match name {
            "drop" => Self::Drop,
            "rewrite" => Self::Rewrite,
            "rewrite-with-tombstone" => Self::RewriteWithTombstone,
            "delete-to-tombstone" => Self::DeleteToTombstone,
            _ => Self::Tombstone,
        }
    }

    fn rewrites(self) -> bool {
        matches!(self, Self::Rewrite | Self::RewriteWithTombstone)
    }

    fn keeps_tombstones(self) -> bool {
        matches!(self, Self::Tombstone | Self::RewriteWithTombstone)
    }
}

/// A metadata field copied from the envelope (`op`, `ts_ms`) or its source block
/// (`source.lsn`, written `__source_lsn`).
#[derive(Debug, Clone)]
struct MetaField {
    in_source: bool,
    name: String,
    output: Arc<str>,
}

impl MetaField {
    fn parse(spec: &str, prefix: &str) -> Self {
        match spec.strip_prefix("source.") {
            Some(name) => MetaField {
                in_source: true,
                name: name.to_owned(),
                output: Arc::from(format!("{prefix}source_{name}")),
            },
            None => MetaField {
                in_source: false,
                name: spec.to_owned(),
                output: Arc::from(format!("{prefix}{spec}")),
            },
        }
    }

    fn lookup<'a>(
        &self,
        event: &ChangeEvent<'a>,
        envelope: &'a Struct,
    ) -> Option<(&'a Arc<Schema>, &'a Value)> {
        let holder = if self.in_source {
            event.source()?
        } else {
            envelope
        };
        let (i, f) = holder.schema().field(&self.name)?;
        Some((f.schema(), &holder.values()[i]))
    }
}

/// Input row schema address → (that schema, kept alive so the address stays unique;
/// the output schema).
type SchemaCache = HashMap<usize, (Arc<Schema>, Arc<Schema>)>;

/// Debezium's `ExtractNewRecordState`. Options: `delete.tombstone.handling.mode`,
/// `add.fields`, `add.fields.prefix` (default `__`), `add.headers`, `add.headers.prefix`.
/// Output schemas are built once per input schema and cached.
#[derive(Debug, Default)]
pub struct ExtractNewRecordState {
    handling: DeleteTombstoneHandling,
    fields: Vec<MetaField>,
    headers: Vec<MetaField>,
    deleted_field: Option<Arc<str>>,
    schemas: Mutex<SchemaCache>,
}

impl ExtractNewRecordState {
    /// With Debezium's defaults: deletes become tombstones, no added fields.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `delete.tombstone.handling.mode`.
    pub fn with_delete_handling(mut self, handling: DeleteTombstoneHandling) -> Self {
        self.handling = handling;
        self.deleted_field = handling.rewrites().then(|| Arc::from("__deleted"));
        self
    }

    /// Adds envelope fields to the row (`add.fields`, e.g. `["op", "source.ts_ms"]`).
    pub fn with_added_fields(mut self, specs: &[&str], prefix: &str) -> Self {
        self.fields = specs.iter().map(|s| MetaField::parse(s, prefix)).collect();
        self
    }

    /// Adds envelope fields as headers (`add.headers`).
    pub fn with_added_headers(mut self, specs: &[&str], prefix: &str) -> Self {
        self.headers = specs.iter().map(|s| MetaField::parse(s, prefix)).collect();
        self
    }

    /// Builds from `transforms.<alias>.*` properties.
    pub fn from_props(scope: &Scope<'_>) -> Result<Self, Error> {
        let mode = scope.one_of(
            "delete.tombstone.handling.mode",
            &DeleteTombstoneHandling::NAMES,
            "tombstone",
        )?;
        let field_prefix = scope.get("add.fields.prefix").unwrap_or("__");
        let header_prefix = scope.get("add.headers.prefix").unwrap_or("__");
        Ok(Self::new()
            .with_delete_handling(DeleteTombstoneHandling::from_name(mode))
            .with_added_fields(&scope.list("add.fields"), field_prefix)
            .with_added_headers(&scope.list("add.headers"), header_prefix))
    }

    fn output_schema(
        &self,
        row: &Arc<Schema>,
        event: &ChangeEvent<'_>,
        envelope: &Struct,
    ) -> Arc<Schema> {
        if self.fields.is_empty() && self.deleted_field.is_none() {
            return row.clone();
        }
        let key = Arc::as_ptr(row) as usize;
        let mut cache = self.schemas.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, out)) = cache.get(&key) {
            return out.clone();
        }
        let mut b = row.to_builder();
        for f in &self.fields {
            let schema = f
                .lookup(event, envelope)
                .map(|(s, _)| s.to_builder().optional().build())
                .unwrap_or_else(|| Schema::optional(SchemaType::String));
            b = b.field(f.output.clone(), schema);
        }
        if let Some(name) = &self.deleted_field {
            b = b.field(name.clone(), Schema::optional(SchemaType::String));
        }
        let out = b.build();
        cache.insert(key, (row.clone(), out.clone()));
        out
    }
}

impl Transform for ExtractNewRecordState {
    fn apply(&self, mut record: Record) -> Result<Option<Record>, Error> {
        if record.is_tombstone() {
            return Ok(self.handling.keeps_tombstones().then_some(record));
        }
        let Some(event) = ChangeEvent::from_record(&record) else {
            return Ok(Some(record));
        };
        let envelope = record.value.as_struct().expect("change events are structs");
        let op = event
            .op()
            .ok_or_else(|| transform_error(&record, "envelope has no valid `op`"))?;
        let row = match op {
            Op::Truncate | Op::Message => return Ok(None),
            Op::Delete => match self.handling {
                DeleteTombstoneHandling::Drop => return Ok(None),
                DeleteTombstoneHandling::Tombstone | DeleteTombstoneHandling::DeleteToTombstone => {
                    record.value_schema = None;
                    record.value = Value::Null;
                    return Ok(Some(record));
                }
                _ => event.before(),
            },
            _ => event.after(),
        };
        let Some(row) = row else {
            return Err(transform_error(
                &record,
                format!("`{}` event has no row to extract", op.code()),
            ));
        };
        let mut headers = Vec::with_capacity(self.headers.len());
        for h in &self.headers {
            let (schema, value) = h
                .lookup(&event, envelope)
                .map(|(s, v)| (Some(s.clone()), v.clone()))
                .unwrap_or((None, Value::Null));
            headers.push(crate::record::Header {
                key: h.output.clone(),
                schema,
                value,
            });
        }
        let schema = self.output_schema(row.schema(), &event, envelope);
        let value = if Arc::ptr_eq(&schema, row.schema()) {
            Value::Struct(row.clone())
        } else {
            let mut values = Vec::with_capacity(schema.fields().len());
            values.extend_from_slice(row.values());
            for f in &self.fields {
                values.push(
                    f.lookup(&event, envelope)
                        .map_or(Value::Null, |(_, v)| v.clone()),
                );
            }
            if self.deleted_field.is_some() {
                values.push(Value::static_str(if op == Op::Delete {
                    "true"
                } else {
                    "false"
                }));
            }
            Value::Struct(
                Struct::new(schema.clone(), values)
                    .map_err(|e| transform_error(&record, e.to_string()))?,
            )
        };
        record.value_schema = Some(schema);
        record.value = value;
        record.headers.extend(headers);
        Ok(Some(record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::EnvelopeSchema;
    use std::time::UNIX_EPOCH;

    fn fixture() -> (EnvelopeSchema, Arc<Schema>, Arc<Schema>) {
        let row = Schema::struct_builder()
            .name("s.public.t.Value")
            .optional()
            .field("id", Schema::required(SchemaType::Int32))
            .build();
        let source = Schema::struct_builder()
            .name("io.debezium.connector.postgresql.Source")
            .field("lsn", Schema::optional(SchemaType::Int64))
            .build();
        (
            EnvelopeSchema::new("s.public.t", row.clone(), source.clone()).unwrap(),
            row,
            source,
        )
    }

    fn event(op: Op, before: Option<i32>, after: Option<i32>) -> Record {
        event_of(&fixture(), op, before, after)
    }

    fn event_of(
        fx: &(EnvelopeSchema, Arc<Schema>, Arc<Schema>),
        op: Op,
        before: Option<i32>,
        after: Option<i32>,
    ) -> Record {
        let (env, row, source) = fx.clone();
        let mk = |id: i32| Struct::new(row.clone(), vec![Value::Int32(id)]).unwrap();
        let src = Struct::new(source, vec![Value::Int64(42)]).unwrap();
        let value = env.event(op, before.map(mk), after.map(mk), src, None, UNIX_EPOCH);
        Record::new(Arc::from("s.public.t"), Some(env.schema().clone()), value)
    }

    #[test]
    fn default_extracts_after_and_turns_deletes_into_tombstones() {
        let t = ExtractNewRecordState::new();
        let out = t.apply(event(Op::Create, None, Some(1))).unwrap().unwrap();
        assert_eq!(
            out.value.as_struct().unwrap().get("id"),
            Some(&Value::Int32(1))
        );
        let del = t.apply(event(Op::Delete, Some(1), None)).unwrap().unwrap();
        assert!(del.is_tombstone());
        assert!(t.apply(event(Op::Truncate, None, None)).unwrap().is_none());
    }

    #[test]
    fn rewrite_adds_deleted_flag_and_metadata_fields() {
        let t = ExtractNewRecordState::new()
            .with_delete_handling(DeleteTombstoneHandling::Rewrite)
            .with_added_fields(&["op", "source.lsn"], "__");
        let del = t.apply(event(Op::Delete, Some(9), None)).unwrap().unwrap();
        let s = del.value.as_struct().unwrap();
        assert_eq!(s.get("id"), Some(&Value::Int32(9)));
        assert_eq!(s.get("__op").and_then(Value::as_str), Some("d"));
        assert_eq!(s.get("__source_lsn"), Some(&Value::Int64(42)));
        assert_eq!(s.get("__deleted").and_then(Value::as_str), Some("true"));
        let tomb = Record::new(Arc::from("x"), None, Value::Null);
        assert!(t.apply(tomb).unwrap().is_none());
        // Schemas are cached: two events of one table version share the output schema.
        let fx = fixture();
        let a = t
            .apply(event_of(&fx, Op::Create, None, Some(1)))
            .unwrap()
            .unwrap();
        let b = t
            .apply(event_of(&fx, Op::Update, Some(1), Some(2)))
            .unwrap()
            .unwrap();
        assert!(Arc::ptr_eq(
            a.value_schema.as_ref().unwrap(),
            b.value_schema.as_ref().unwrap()
        ));
    }

    #[test]
    fn headers_carry_metadata() {
        let t = ExtractNewRecordState::new().with_added_headers(&["op"], "__");
        let out = t
            .apply(event(Op::Update, Some(1), Some(2)))
            .unwrap()
            .unwrap();
        assert_eq!(
            out.header("__op").map(|h| &h.value),
            Some(&Value::string("u"))
        );
    }
}
