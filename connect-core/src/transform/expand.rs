//! The outbox router's `table.expand.json.payload`: a JSON text payload becomes a Connect
//! struct with a schema inferred as Debezium infers it (its outbox `SchemaBuilderUtil`):
//! objects are optional structs with their fields in document order, strings, booleans
//! and numbers optional `string` / `boolean` / `int32` (fits) / `int64` (fits) /
//! `float64`, arrays take the schema of their non-null members (the union of the fields
//! of their objects; integers as wide as the widest), an empty array is an array of
//! strings, and null fields are left out of the schema.

use std::fmt;
use std::sync::Arc;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::schema::{Schema, SchemaBuilder, SchemaType};
use crate::value::{Struct, Value};

/// A JSON document with objects in document order (serde_json's map sorts its keys).
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Arr(Vec<Node>),
    Obj(Vec<(String, Node)>),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Node, D::Error> {
        struct NodeVisitor;
        impl<'de> Visitor<'de> for NodeVisitor {
            type Value = Node;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("JSON")
            }
            fn visit_unit<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
                Ok(Node::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
                Ok(Node::Int(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
                Ok(i64::try_from(v).map_or(Node::Float(v as f64), Node::Int))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
                Ok(Node::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Node, E> {
                Ok(Node::Str(v.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(n) = seq.next_element()? {
                    items.push(n);
                }
                Ok(Node::Arr(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
                let mut fields = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Node>()? {
                    fields.push((k, v));
                }
                Ok(Node::Obj(fields))
            }
        }
        d.deserialize_any(NodeVisitor)
    }
}

/// The struct schema and value of a JSON object text; `Err` says why it is not one.
pub(crate) fn expand(text: &str) -> Result<(Arc<Schema>, Value), String> {
    let node: Node = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let Node::Obj(fields) = &node else {
        return Err("the payload is not a JSON object".to_owned());
    };
    let schema = object_schema(std::iter::once(fields.as_slice()))?.build();
    let value = value_of(&schema, &node);
    Ok((schema, value))
}

/// The optional struct schema of one or more objects (the union of their fields).
fn object_schema<'a>(
    objects: impl Iterator<Item = &'a [(String, Node)]>,
) -> Result<SchemaBuilder, String> {
    let mut fields: Vec<(&str, Arc<Schema>)> = Vec::new();
    for object in objects {
        for (name, node) in object {
            if fields.iter().any(|(n, _)| n == name) {
                continue;
            }
            if let Some(schema) = node_schema(node)? {
                fields.push((name, schema));
            }
        }
    }
    Ok(fields
        .into_iter()
        .fold(Schema::struct_builder().optional(), |b, (n, s)| {
            b.field(n, s)
        }))
}

fn node_schema(node: &Node) -> Result<Option<Arc<Schema>>, String> {
    Ok(Some(match node {
        Node::Null => return Ok(None),
        Node::Bool(_) => Schema::optional(SchemaType::Boolean),
        Node::Int(v) if i32::try_from(*v).is_ok() => Schema::optional(SchemaType::Int32),
        Node::Int(_) => Schema::optional(SchemaType::Int64),
        Node::Float(_) => Schema::optional(SchemaType::Float64),
        Node::Str(_) => Schema::optional(SchemaType::String),
        Node::Obj(fields) => object_schema(std::iter::once(fields.as_slice()))?.build(),
        Node::Arr(items) => {
            let members: Vec<&Node> = items.iter().filter(|n| **n != Node::Null).collect();
            let item = match members.first() {
                None => Schema::optional(SchemaType::String),
                Some(Node::Obj(_)) => object_schema(members.iter().filter_map(|n| match n {
                    Node::Obj(f) => Some(f.as_slice()),
                    _ => None,
                }))?
                .build(),
                Some(first) => {
                    let same =
                        |n: &&Node| std::mem::discriminant(*n) == std::mem::discriminant(*first);
                    if !members.iter().all(same) {
                        return Err("an array mixes member types".to_owned());
                    }
                    // Integers of several widths: the widest decides.
                    let widest = members
                        .iter()
                        .max_by_key(|n| matches!(n, Node::Int(v) if i32::try_from(*v).is_err()))
                        .expect("not empty");
                    node_schema(widest)?.expect("not null")
                }
            };
            Schema::array_builder(item).optional().build()
        }
    }))
}

fn value_of(schema: &Arc<Schema>, node: &Node) -> Value {
    match (schema.schema_type(), node) {
        (_, Node::Null) => Value::Null,
        (SchemaType::Boolean, Node::Bool(b)) => Value::Boolean(*b),
        (SchemaType::Int32, Node::Int(v)) => Value::Int32(*v as i32),
        (SchemaType::Int64, Node::Int(v)) => Value::Int64(*v),
        (SchemaType::Float64, Node::Float(v)) => Value::Float64(*v),
        (SchemaType::Float64, Node::Int(v)) => Value::Float64(*v as f64),
        (SchemaType::String, Node::Str(s)) => Value::string(s),
        (SchemaType::Array, Node::Arr(items)) => {
            let item = schema.value_schema().expect("array items");
            Value::Array(items.iter().map(|n| value_of(item, n)).collect())
        }
        (SchemaType::Struct, Node::Obj(fields)) => {
            let values = schema
                .fields()
                .iter()
                .map(|f| {
                    fields
                        .iter()
                        .find(|(n, _)| n == f.name())
                        .map_or(Value::Null, |(_, n)| value_of(f.schema(), n))
                })
                .collect();
            Value::Struct(Struct::new(schema.clone(), values).expect("one value per field"))
        }
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_keep_document_order_and_types_are_inferred_as_debezium_does() {
        let (schema, value) = expand(
            r#"{"z":1,"a":"x","big":5000000000,"f":1.5,"ok":true,"gone":null,
                "tags":["a","b"],"none":[],"items":[{"sku":"s1"},{"qty":2}],"in":{"k":1}}"#,
        )
        .unwrap();
        assert_eq!(
            schema.json(),
            concat!(
                r#"{"type":"struct","fields":[{"type":"int32","optional":true,"field":"z"},"#,
                r#"{"type":"string","optional":true,"field":"a"},{"type":"int64","optional":true,"field":"big"},"#,
                r#"{"type":"double","optional":true,"field":"f"},{"type":"boolean","optional":true,"field":"ok"},"#,
                r#"{"type":"array","items":{"type":"string","optional":true},"optional":true,"field":"tags"},"#,
                r#"{"type":"array","items":{"type":"string","optional":true},"optional":true,"field":"none"},"#,
                r#"{"type":"array","items":{"type":"struct","fields":[{"type":"string","optional":true,"field":"sku"},"#,
                r#"{"type":"int32","optional":true,"field":"qty"}],"optional":true},"optional":true,"field":"items"},"#,
                r#"{"type":"struct","fields":[{"type":"int32","optional":true,"field":"k"}],"optional":true,"field":"in"}],"#,
                r#""optional":true}"#
            )
        );
        let items = value.as_struct().unwrap().get("items").unwrap();
        let Value::Array(items) = items else { panic!() };
        assert_eq!(
            items[1].as_struct().unwrap().get("qty"),
            Some(&Value::Int32(2))
        );
        assert_eq!(items[1].as_struct().unwrap().get("sku"), Some(&Value::Null));
        assert!(expand("[1]").unwrap_err().contains("not a JSON object"));
        assert!(expand(r#"{"m":[1,"a"]}"#).unwrap_err().contains("mixes"));
    }
}
