//! Debezium's `ExtractNewRecordState` ("unwrap"): replaces the envelope by the row.

use std::sync::Arc;

use super::{transform_error, SchemaCache, Transform};
use crate::envelope::{ChangeEvent, Op};
use crate::error::Error;
use crate::properties::Scope;
use crate::record::{Header, Record};
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
}

/// What happens to delete events: the split of [`DeleteTombstoneHandling`] (and of the
/// legacy `delete.handling.mode`, which also allows dropping deletes but keeping tombstones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DeleteAction {
    Drop,
    Tombstone,
    Rewrite,
}

impl DeleteTombstoneHandling {
    fn split(self) -> (DeleteAction, bool) {
        match self {
            Self::Drop => (DeleteAction::Drop, false),
            Self::Tombstone => (DeleteAction::Tombstone, true),
            Self::Rewrite => (DeleteAction::Rewrite, false),
            Self::RewriteWithTombstone => (DeleteAction::Rewrite, true),
            Self::DeleteToTombstone => (DeleteAction::Tombstone, false),
        }
    }
}

/// A field of the envelope copied into the row or the headers, as Debezium's
/// `add.fields` / `add.headers` name them: `op` and `ts_ms` are the envelope's; `id`,
/// `total_order` and `data_collection_order` the transaction block's; any other bare
/// name the source block's (`lsn` → `__lsn`); `struct.field` names the block
/// (`source.ts_ms` → `__source_ts_ms`); `spec:NAME` renames (`source.ts_ms:EVENT_TS` →
/// `__EVENT_TS`). A field the block lacks is looked up in the envelope itself (where an
/// earlier transform may have put it), and is left out when neither has it.
#[derive(Debug, Clone)]
struct FieldRef {
    /// The envelope field holding it; `None` for the envelope itself.
    block: Option<String>,
    name: String,
    output: Arc<str>,
}

impl FieldRef {
    fn parse(spec: &str, prefix: &str) -> Self {
        let (path, rename) = match spec.split_once(':') {
            Some((path, rename)) => (path, Some(rename)),
            None => (spec, None),
        };
        let (block, name) = match path.split_once('.') {
            Some((block, name)) => (Some(block.to_owned()), name),
            None => (
                match path {
                    "op" | "ts_ms" => None,
                    "id" | "total_order" | "data_collection_order" => {
                        Some("transaction".to_owned())
                    }
                    _ => Some("source".to_owned()),
                },
                path,
            ),
        };
        let output = match (rename, path.contains('.')) {
            (Some(rename), _) => format!("{prefix}{rename}"),
            (None, true) => format!("{prefix}{}_{name}", block.as_deref().unwrap_or_default()),
            (None, false) => format!("{prefix}{name}"),
        };
        FieldRef {
            block,
            name: name.to_owned(),
            output: Arc::from(output),
        }
    }

    /// The field's schema and value in `envelope`, if its schema has it.
    fn lookup<'a>(&self, envelope: &'a Struct) -> Option<(&'a Arc<Schema>, &'a Value)> {
        let in_envelope = || {
            let (i, f) = envelope.schema().field(&self.name)?;
            Some((f.schema(), &envelope.values()[i]))
        };
        let Some(block) = &self.block else {
            return in_envelope();
        };
        let (bi, bf) = envelope.schema().field(block)?;
        match bf.schema().field(&self.name) {
            Some((i, f)) => {
                let value = match &envelope.values()[bi] {
                    Value::Struct(b) => &b.values()[i],
                    _ => &Value::Null,
                };
                Some((f.schema(), value))
            }
            None => in_envelope(),
        }
    }

    /// The schema the copy gets: the field's, optional.
    fn output_schema(schema: &Arc<Schema>) -> Arc<Schema> {
        if schema.schema_type() == SchemaType::Struct {
            schema.to_builder().optional().build()
        } else {
            schema.basics().optional().build()
        }
    }
}

/// Debezium's `ExtractNewRecordState`. Options: `delete.tombstone.handling.mode` (or the
/// legacy `delete.handling.mode` with `drop.tombstones`), `add.fields`,
/// `add.fields.prefix` (default `__`), `add.headers`, `add.headers.prefix`,
/// `route.by.field`. Output schemas are built once per input schema and cached.
#[derive(Debug)]
pub struct ExtractNewRecordState {
    deletes: DeleteAction,
    keep_tombstones: bool,
    fields: Vec<FieldRef>,
    headers: Vec<FieldRef>,
    deleted_field: Option<Arc<str>>,
    route_by: Option<String>,
    schemas: SchemaCache,
}

impl Default for ExtractNewRecordState {
    fn default() -> Self {
        Self::new()
    }
}

impl ExtractNewRecordState {
    /// With Debezium's defaults: deletes become tombstones, no added fields.
    pub fn new() -> Self {
        let (deletes, keep_tombstones) = DeleteTombstoneHandling::default().split();
        ExtractNewRecordState {
            deletes,
            keep_tombstones,
            fields: Vec::new(),
            headers: Vec::new(),
            deleted_field: None,
            route_by: None,
            schemas: SchemaCache::default(),
        }
    }

    /// Sets `delete.tombstone.handling.mode`.
    pub fn with_delete_handling(self, handling: DeleteTombstoneHandling) -> Self {
        let (deletes, keep_tombstones) = handling.split();
        self.with_actions(deletes, keep_tombstones)
    }

    fn with_actions(mut self, deletes: DeleteAction, keep_tombstones: bool) -> Self {
        self.deletes = deletes;
        self.keep_tombstones = keep_tombstones;
        self.deleted_field = (deletes == DeleteAction::Rewrite).then(|| Arc::from("__deleted"));
        self
    }

    /// Adds envelope fields to the row (`add.fields`, e.g. `["op", "source.ts_ms"]`).
    pub fn with_added_fields(mut self, specs: &[&str], prefix: &str) -> Self {
        self.fields = specs.iter().map(|s| FieldRef::parse(s, prefix)).collect();
        self
    }

    /// Adds envelope fields as headers (`add.headers`).
    pub fn with_added_headers(mut self, specs: &[&str], prefix: &str) -> Self {
        self.headers = specs.iter().map(|s| FieldRef::parse(s, prefix)).collect();
        self
    }

    /// Routes each event to the topic named by a string column of its row
    /// (`route.by.field`; the `before` row for deletes). A null keeps the topic.
    pub fn with_route_by_field(mut self, field: &str) -> Self {
        self.route_by = Some(field.to_owned());
        self
    }

    /// Builds from `transforms.<alias>.*` properties.
    pub fn from_props(scope: &Scope<'_>) -> Result<Self, Error> {
        let legacy_mode =
            scope.one_of("delete.handling.mode", &["none", "drop", "rewrite"], "drop")?;
        let legacy_drop_tombstones = scope.bool_or("drop.tombstones", true)?;
        let legacy =
            scope.get("delete.handling.mode").is_some() || scope.get("drop.tombstones").is_some();
        let mode = scope.one_of(
            "delete.tombstone.handling.mode",
            &DeleteTombstoneHandling::NAMES,
            "tombstone",
        )?;
        let mut t = Self::new();
        t = if legacy && scope.get("delete.tombstone.handling.mode").is_none() {
            let deletes = match legacy_mode {
                "none" => DeleteAction::Tombstone,
                "rewrite" => DeleteAction::Rewrite,
                _ => DeleteAction::Drop,
            };
            t.with_actions(deletes, !legacy_drop_tombstones)
        } else {
            t.with_delete_handling(DeleteTombstoneHandling::from_name(mode))
        };
        let field_prefix = scope.get("add.fields.prefix").unwrap_or("__");
        let header_prefix = scope.get("add.headers.prefix").unwrap_or("__");
        t = t
            .with_added_fields(&scope.list("add.fields"), field_prefix)
            .with_added_headers(&scope.list("add.headers"), header_prefix);
        if let Some(field) = scope.get("route.by.field") {
            t = t.with_route_by_field(field);
        }
        Ok(t)
    }

    fn output_schema(&self, row: &Arc<Schema>, envelope: &Struct) -> Arc<Schema> {
        if self.fields.is_empty() && self.deleted_field.is_none() {
            return row.clone();
        }
        self.schemas.get_or_build(row, |row| {
            let mut b = row.to_builder();
            for f in &self.fields {
                if let Some((schema, _)) = f.lookup(envelope) {
                    b = b.field(f.output.clone(), FieldRef::output_schema(schema));
                }
            }
            if let Some(name) = &self.deleted_field {
                b = b.field(name.clone(), Schema::optional(SchemaType::String));
            }
            b.build()
        })
    }

    /// The headers `add.headers` asks for; a tombstone gets only `op` (as `d`).
    fn headers_of(&self, envelope: Option<&Struct>) -> Vec<Header> {
        let mut out = Vec::with_capacity(self.headers.len());
        for h in &self.headers {
            match envelope {
                None if h.block.is_none() && h.name == "op" => out.push(Header {
                    key: h.output.clone(),
                    schema: Some(Schema::required(SchemaType::String)),
                    value: Value::static_str(Op::Delete.code()),
                }),
                None => {}
                Some(envelope) => {
                    if let Some((schema, value)) = h.lookup(envelope) {
                        out.push(Header {
                            key: h.output.clone(),
                            schema: Some(FieldRef::output_schema(schema)),
                            value: value.clone(),
                        });
                    }
                }
            }
        }
        out
    }

    /// The topic `route.by.field` picks from `row`, if it is set and the column not null.
    fn routed_topic(&self, record: &Record, row: &Struct) -> Result<Option<Arc<str>>, Error> {
        let Some(field) = &self.route_by else {
            return Ok(None);
        };
        match row.get(field) {
            Some(Value::String(topic)) => Ok(Some(Arc::from(&**topic))),
            Some(Value::Null) => Ok(None),
            Some(_) => Err(transform_error(
                record,
                format!("route.by.field `{field}` is not a string column"),
            )),
            None => Err(transform_error(
                record,
                format!("route.by.field `{field}` is not a column of the row"),
            )),
        }
    }
}

impl Transform for ExtractNewRecordState {
    fn apply(&self, mut record: Record) -> Result<Option<Record>, Error> {
        if record.is_tombstone() {
            if !self.keep_tombstones {
                return Ok(None);
            }
            record.headers.extend(self.headers_of(None));
            return Ok(Some(record));
        }
        let Some(event) = ChangeEvent::from_record(&record) else {
            return Ok(Some(record));
        };
        let envelope = record.value.as_struct().expect("change events are structs");
        let op = event
            .op()
            .ok_or_else(|| transform_error(&record, "envelope has no valid `op`"))?;
        let (row, row_field) = match op {
            Op::Truncate | Op::Message => return Ok(None),
            Op::Delete => (event.before(), "before"),
            _ => (event.after(), "after"),
        };
        let Some(row) = row else {
            return Err(transform_error(
                &record,
                format!("`{}` event has no row to extract", op.code()),
            ));
        };
        if op == Op::Delete && self.deletes == DeleteAction::Drop {
            return Ok(None);
        }
        let topic = self.routed_topic(&record, row)?;
        let headers = self.headers_of(Some(envelope));
        if op == Op::Delete && self.deletes == DeleteAction::Tombstone {
            record.value_schema = None;
            record.value = Value::Null;
        } else {
            let schema = self.output_schema(row.schema(), envelope);
            let added: Vec<Value> = if Arc::ptr_eq(&schema, row.schema()) {
                Vec::new()
            } else {
                let mut added: Vec<Value> = self
                    .fields
                    .iter()
                    .filter_map(|f| f.lookup(envelope).map(|(_, v)| v.clone()))
                    .collect();
                if self.deleted_field.is_some() {
                    added.push(Value::static_str(if op == Op::Delete {
                        "true"
                    } else {
                        "false"
                    }));
                }
                added
            };
            // The row is moved out of the envelope, not copied.
            let Value::Struct(envelope) = std::mem::take(&mut record.value) else {
                unreachable!("checked above")
            };
            let (i, _) = envelope.schema().field(row_field).expect("envelope field");
            let Value::Struct(row) = envelope.into_values().swap_remove(i) else {
                unreachable!("checked above")
            };
            record.value = if added.is_empty() {
                Value::Struct(row)
            } else {
                let mut values = row.into_values();
                values.extend(added);
                Value::Struct(
                    Struct::new(schema.clone(), values)
                        .map_err(|e| transform_error(&record, e.to_string()))?,
                )
            };
            record.value_schema = Some(schema);
        }
        if let Some(topic) = topic {
            record.topic = topic;
        }
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

    fn from(pairs: &[(&str, &str)]) -> ExtractNewRecordState {
        let props = crate::properties::Properties::from_pairs(pairs.iter().copied());
        let t = ExtractNewRecordState::from_props(&props.root()).unwrap();
        props.reject_unused().unwrap();
        t
    }

    #[test]
    fn added_fields_follow_debeziums_naming_and_skip_absent_ones() {
        let t = from(&[("add.fields", "op,lsn,source.lsn:POS,ts_ms,id,nope")]);
        let out = t.apply(event(Op::Create, None, Some(1))).unwrap().unwrap();
        let row = out.value.as_struct().unwrap();
        let names: Vec<&str> = row.schema().fields().iter().map(|f| f.name()).collect();
        // `ts_ms` is the envelope's, `id` the transaction block's (null outside
        // transactions), and no block has `nope`.
        assert_eq!(names, ["id", "__op", "__lsn", "__POS", "__ts_ms", "__id"]);
        assert_eq!(row.get("__id"), Some(&Value::Null));
        assert_eq!(row.get("__lsn"), Some(&Value::Int64(42)));
        assert_eq!(row.get("__POS"), Some(&Value::Int64(42)));
        assert!(row
            .schema()
            .fields()
            .iter()
            .skip(1)
            .all(|f| f.schema().is_optional()));
    }

    #[test]
    fn tombstones_get_the_op_header_and_deletes_keep_theirs() {
        let t = from(&[("add.headers", "op,source.lsn")]);
        let tomb = Record::new(Arc::from("x"), None, Value::Null);
        let out = t.apply(tomb).unwrap().unwrap();
        let headers: Vec<(&str, &Value)> =
            out.headers.iter().map(|h| (&*h.key, &h.value)).collect();
        assert_eq!(headers, [("__op", &Value::string("d"))]);
        let del = t.apply(event(Op::Delete, Some(3), None)).unwrap().unwrap();
        assert!(del.is_tombstone());
        let headers: Vec<(&str, &Value)> =
            del.headers.iter().map(|h| (&*h.key, &h.value)).collect();
        assert_eq!(
            headers,
            [
                ("__op", &Value::string("d")),
                ("__source_lsn", &Value::Int64(42))
            ]
        );
    }

    #[test]
    fn legacy_options_can_drop_deletes_but_keep_tombstones() {
        let t = from(&[
            ("delete.handling.mode", "drop"),
            ("drop.tombstones", "false"),
        ]);
        assert!(t.apply(event(Op::Delete, Some(1), None)).unwrap().is_none());
        let tomb = Record::new(Arc::from("x"), None, Value::Null);
        assert!(t.apply(tomb).unwrap().is_some());
        let t = from(&[("delete.handling.mode", "rewrite")]);
        let out = t.apply(event(Op::Delete, Some(1), None)).unwrap().unwrap();
        assert_eq!(
            out.value.as_struct().unwrap().get("__deleted"),
            Some(&Value::string("true"))
        );
        let tomb = Record::new(Arc::from("x"), None, Value::Null);
        assert!(t.apply(tomb).unwrap().is_none());
    }

    #[test]
    fn route_by_field_names_the_topic_from_the_row() {
        let row = Schema::struct_builder()
            .name("s.public.t.Value")
            .optional()
            .field("id", Schema::required(SchemaType::Int32))
            .field("kind", Schema::optional(SchemaType::String))
            .build();
        let source = Schema::struct_builder()
            .name("io.debezium.connector.postgresql.Source")
            .build();
        let env = EnvelopeSchema::new("s.public.t", row.clone(), source.clone()).unwrap();
        let mk = |kind: Option<&str>| {
            Struct::new(row.clone(), vec![Value::Int32(1), Value::from(kind)]).unwrap()
        };
        let rec = |op, before, after| {
            let src = Struct::new(source.clone(), vec![]).unwrap();
            let v = env.event(op, before, after, src, None, UNIX_EPOCH);
            Record::new(Arc::from("s.public.t"), Some(env.schema().clone()), v)
        };
        let t = from(&[
            ("route.by.field", "kind"),
            ("delete.tombstone.handling.mode", "rewrite"),
        ]);
        let out = t
            .apply(rec(Op::Create, None, Some(mk(Some("orders")))))
            .unwrap()
            .unwrap();
        assert_eq!(&*out.topic, "orders");
        let out = t
            .apply(rec(Op::Delete, Some(mk(Some("gone"))), None))
            .unwrap()
            .unwrap();
        assert_eq!(&*out.topic, "gone");
        let out = t
            .apply(rec(Op::Create, None, Some(mk(None))))
            .unwrap()
            .unwrap();
        assert_eq!(&*out.topic, "s.public.t");
        let bad = from(&[("route.by.field", "id")]);
        let e = bad
            .apply(rec(Op::Create, None, Some(mk(None))))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`id` is not a string column"), "{e}");
    }
}
